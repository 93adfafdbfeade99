//! Keep-alive connections to one origin (scheme, host and port, through one connector). Each deployment holds
//! its origin, found once when the configuration snapshot is built, so a request checks a connection out of a
//! short list under a mutex: no pool key is built or hashed per request, and no task is spawned to hand a
//! connection back (hyper-util's legacy client did both, a fifth of the router's work on a small request).
//!
//! HTTP/1.1 connections serve one exchange at a time: the response body hands its connection back when it
//! has been read to its end; a body dropped earlier closes it. An HTTP/2 connection (by ALPN on https) is
//! shared by every request until it closes.
//!
//! An HTTP/1.1 connection (our own client, [`super::http1`]) is not spawned as a task of its own: whoever
//! uses it drives it, in the request's task: the exchange while it waits for the response head, the body
//! while it is read (see [`Http1`]). A spawned connection would put two task hops on every request (the request
//! into the connection task, the response out) and one more on every body frame, with their wake-ups: most
//! of tokio's share of a request, and of a stream's events. An idle connection is polled by nothing, so what
//! happened to it meanwhile (the upstream closing it, most often) is read when it is checked out.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::Instant;
use tower_service::Service;

use super::client::Connector;
use super::connector::BoxError;
use super::http1;

/// How long an unused connection is kept (what the legacy client's pool did).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle HTTP/1.1 connections kept per origin; one more is closed when it comes back.
const MAX_IDLE: usize = 128;
/// Reused connections a request may find closed before it goes on a new one.
const MAX_UNSENT: u32 = 3;

/// What the connector opens (TCP, perhaps through a proxy, perhaps TLS).
type Io = <Connector as Service<Uri>>::Response;

/// A deployment's endpoint in the two forms requests use: absolute (HTTP/2, and HTTP/1.1 through an HTTP
/// proxy) and origin-form (the path, for HTTP/1.1 straight to the host).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub absolute: Uri,
    /// The request target of HTTP/1.1 through an HTTP proxy.
    absolute_form: String,
    /// The request target of HTTP/1.1 straight to the host: the path and query.
    origin_form: String,
}

impl Endpoint {
    pub fn new(absolute: Uri) -> Self {
        let origin_form = absolute.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Self {
            absolute_form: absolute.to_string(),
            absolute,
            origin_form,
        }
    }
}

/// Why no response came back.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (TCP, proxy, TLS or the HTTP/2 handshake).
    Connect(BoxError),
    /// The connection failed during the exchange.
    Exchange(BoxError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect error: {e}"),
            SendError::Exchange(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(&**e),
            SendError::Exchange(e) => Some(&**e),
        }
    }
}

/// The connections to one origin.
pub struct Origin {
    connector: Connector,
    /// The `Host` header of HTTP/1.1 requests (HTTP/2 sends the authority itself).
    host: HeaderValue,
    /// `Proxy-Authorization` for requests that go to an HTTP proxy in absolute form (plain-http targets;
    /// https ones carry it on their CONNECT instead).
    proxy_authorization: Option<HeaderValue>,
    /// Where the endpoint was, for connecting.
    target: Uri,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Most recently used last: checkout takes the warmest connection.
    http1: Vec<(Http1, Instant)>,
    http2: Option<http2::SendRequest<Full<Bytes>>>,
}

/// An HTTP/1.1 connection. Nothing polls it but its current user: the exchange until the response head, then
/// [`UpstreamBody`] until the body's end. While it idles, nothing reads it: a checkout looks whether the
/// upstream closed it meanwhile. At most [`MAX_IDLE`] per origin, for at most [`IDLE_TIMEOUT`].
struct Http1 {
    /// Boxed: it holds the TLS state and the read buffer, and is moved with every checkout and body.
    connection: Box<http1::Connection<TokioIo<Io>>>,
    /// Requests on it go to an HTTP proxy, in absolute form.
    proxied: bool,
}

enum Checkout {
    Http1(Http1),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Origin {
    pub(super) fn new(connector: Connector, proxy_authorization: Option<HeaderValue>, endpoint: &Uri) -> Self {
        let host = endpoint.host().unwrap_or_default();
        let host = match endpoint.port() {
            Some(port) if !is_default_port(endpoint, port.as_u16()) => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        Self {
            connector,
            host: HeaderValue::try_from(host).expect("a URI's authority is a valid header value"),
            proxy_authorization,
            target: endpoint.clone(),
            idle: Mutex::new(Idle::default()),
        }
    }

    /// Sends one `POST` of `body` with `headers` (borrowed: most requests send a deployment's template as
    /// it is), on an idle connection when there is one. A request that a reused connection
    /// closed before taking is sent again on another (the upstream may close an idle connection at any
    /// moment), at most [`MAX_UNSENT`] times before a fresh connection is opened; a fresh connection's
    /// failure is final.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut unsent = 0;
        // The head and, when small, the body after it: sized once for both.
        let mut head = Vec::with_capacity(1024 + body.len().min(http1::COPY_BODY));
        loop {
            let idle = if unsent < MAX_UNSENT { self.checkout() } else { None };
            let (connection, reused) = match idle {
                Some(connection) => (connection, true),
                // Boxed: the handshakes' futures are large, and every request's future would carry them.
                None => (Box::pin(self.connect()).await?, false),
            };
            match connection {
                Checkout::Http1(mut connection) => {
                    let target = if connection.proxied {
                        endpoint.absolute_form.as_str()
                    } else {
                        endpoint.origin_form.as_str()
                    };
                    head.clear();
                    http1::write_request_head(&mut head, &Method::POST, target, &self.host, headers, body.len());
                    if connection.proxied
                        && let Some(authorization) = &self.proxy_authorization
                    {
                        // Before the blank line that ends the head.
                        head.truncate(head.len() - 2);
                        head.extend_from_slice(b"proxy-authorization: ");
                        head.extend_from_slice(authorization.as_bytes());
                        head.extend_from_slice(b"\r\n\r\n");
                    }
                    match connection.connection.exchange(&mut head, &body).await {
                        Ok(http1::Head {
                            response,
                            framing,
                            reusable,
                        }) => {
                            let back = reusable.then(|| self.clone());
                            let body = UpstreamBody(Source::Http1 {
                                connection: Some(connection),
                                framing,
                                back,
                            });
                            return Ok(response.map(|()| body));
                        }
                        // The upstream closed a reused connection before it took the request.
                        Err(http1::Error::ClosedBeforeResponse) if reused => unsent += 1,
                        Err(error) => return Err(SendError::Exchange(error.into())),
                    }
                }
                Checkout::Http2(mut sender) => {
                    let mut h2 = Request::new(Full::new(body.clone()));
                    *h2.method_mut() = Method::POST;
                    *h2.uri_mut() = endpoint.absolute.clone();
                    *h2.headers_mut() = headers.clone();
                    match sender.try_send_request(h2).await {
                        Ok(response) => {
                            return Ok(response.map(|inner| UpstreamBody(Source::Http2(inner))));
                        }
                        Err(mut error) => {
                            if !reused || error.take_message().is_none() {
                                return Err(SendError::Exchange(error.into_error().into()));
                            }
                            unsent += 1;
                        }
                    }
                }
            }
        }
    }

    /// An idle connection that is still open and ready for a request.
    fn checkout(&self) -> Option<Checkout> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = &idle.http2 {
            if !sender.is_closed() {
                return Some(Checkout::Http2(sender.clone()));
            }
            idle.http2 = None;
        }
        let now = Instant::now();
        // Expired ones are the oldest, at the front.
        let expired = idle.http1.partition_point(|(_, since)| now - *since > IDLE_TIMEOUT);
        idle.http1.drain(..expired);
        while let Some((mut connection, _)) = idle.http1.pop() {
            if connection.connection.is_open() {
                return Some(Checkout::Http1(connection));
            }
        }
        None
    }

    fn put_back(&self, connection: Http1) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.http1.len() < MAX_IDLE {
            idle.http1.push((connection, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Checkout, SendError> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let connected = io.connected();
        if connected.is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            tokio::spawn(connection);
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).http2 = Some(sender.clone());
            return Ok(Checkout::Http2(sender));
        }
        Ok(Checkout::Http1(Http1 {
            connection: Box::new(http1::Connection::new(TokioIo::new(io))),
            proxied: connected.is_proxied(),
        }))
    }
}

fn is_default_port(uri: &Uri, port: u16) -> bool {
    port == if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// An upstream response body. Read to its end, it hands its HTTP/1.1 connection back to the origin.
pub struct UpstreamBody(Source);

enum Source {
    Http1 {
        /// The connection the body arrives on, driven by reading the body; gone once the body failed.
        connection: Option<Http1>,
        framing: http1::Framing,
        /// Where the connection goes back when the body has been read to its end; `None` when it cannot serve
        /// another request.
        back: Option<Arc<Origin>>,
    },
    Http2(Incoming),
    /// An answer made by the router itself (the `mock` upstream), one frame per piece.
    Local(VecDeque<Bytes>),
}

impl UpstreamBody {
    /// A body of `frames`, read one by one as a stream's events would be.
    pub fn local(frames: VecDeque<Bytes>) -> Self {
        Self(Source::Local(frames))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let (connection, framing, back) = match &mut self.0 {
            Source::Http1 {
                connection,
                framing,
                back,
            } => (connection, framing, back),
            Source::Http2(inner) => return Pin::new(inner).poll_frame(cx).map_err(Into::into),
            Source::Local(frames) => return Poll::Ready(frames.pop_front().map(|data| Ok(Frame::data(data)))),
        };
        let Some(open) = connection else {
            return Poll::Ready(None);
        };
        match ready!(open.connection.poll_body(cx, framing)) {
            Some(Ok(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Some(Err(error)) => {
                // A broken body leaves its connection unusable.
                *connection = None;
                Poll::Ready(Some(Err(error.into())))
            }
            None => {
                if let (Some(connection), Some(origin)) = (connection.take(), back.take()) {
                    origin.put_back(connection);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Http1 { framing, .. } => matches!(framing, http1::Framing::Done | http1::Framing::Length(0)),
            Source::Http2(inner) => inner.is_end_stream(),
            Source::Local(frames) => frames.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Http1 { framing, .. } => match framing {
                http1::Framing::Length(left) => SizeHint::with_exact(*left),
                http1::Framing::Done => SizeHint::with_exact(0),
                _ => SizeHint::default(),
            },
            Source::Http2(inner) => inner.size_hint(),
            Source::Local(frames) => SizeHint::with_exact(frames.iter().map(|f| f.len() as u64).sum()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP/1.1 upstream that answers every request on a connection with `ok`, and closes the connection
    /// after each answer when `close` is set. Returns its address, its accepted-connection count and the
    /// request heads it saw.
    async fn upstream(close: bool) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        // One request: its head, then a two-byte body (`{}`).
                        let end = loop {
                            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buffer.len() < end + 2 {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buffer[..end]).into_owned());
                        buffer.drain(..end + 2);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted, heads)
    }

    fn origin(address: &str) -> (Arc<Origin>, Endpoint) {
        let client = super::super::build_client(None, Duration::from_secs(5)).unwrap();
        let endpoint = Endpoint::new(format!("http://{address}/v1/chat/completions?x=1").parse().unwrap());
        (Arc::new(client.origin(&endpoint.absolute)), endpoint)
    }

    /// A `POST` of `{}` without headers of its own.
    async fn send(origin: &Arc<Origin>, endpoint: &Endpoint) -> Result<Response<UpstreamBody>, SendError> {
        origin
            .send(endpoint, &HeaderMap::new(), Bytes::from_static(b"{}"))
            .await
    }

    async fn read(response: Response<UpstreamBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_serves_the_next_request() {
        let (address, accepted, heads) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        for _ in 0..3 {
            assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 3);
        let head = heads[0].to_ascii_lowercase();
        assert!(head.starts_with("post /v1/chat/completions?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {address}\r\n")), "{head}");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (address, accepted, _) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        drop(send(&origin, &endpoint).await.unwrap());
        assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (address, accepted, heads) = upstream(true).await;
        let (origin, endpoint) = origin(&address);
        for _ in 0..3 {
            assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "ok");
            // Give the connection task time to see the close, and also race it: both must work.
            tokio::task::yield_now().await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(
            heads.lock().unwrap().len(),
            3,
            "every request reached the upstream once"
        );
    }

    #[tokio::test]
    async fn connections_that_idled_too_long_are_not_used() {
        let (address, accepted, _) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "ok");
        origin.idle.lock().unwrap().http1[0].1 -= IDLE_TIMEOUT + Duration::from_secs(1);
        assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(origin.idle.lock().unwrap().http1.len(), 1);
    }

    /// Nothing but the body's reader drives the connection: a body that arrives in pieces, after its head,
    /// is read through, and its connection serves the next request.
    #[tokio::test]
    async fn a_body_in_pieces_is_read_by_driving_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 1024];
            for _ in 0..2 {
                // The request's head and its two-byte body.
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") || buffer.len() < 6 {
                    let n = stream.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                buffer.drain(..end + 2);
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                stream.write_all(head).await.unwrap();
                for piece in [&b"2\r\nab\r\n"[..], b"2\r\ncd\r\n", b"0\r\n\r\n"] {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    stream.write_all(piece).await.unwrap();
                }
            }
        });
        let (origin, endpoint) = origin(&address);
        // The upstream takes one connection: a second would never be answered.
        let both = async {
            for _ in 0..2 {
                assert_eq!(read(send(&origin, &endpoint).await.unwrap()).await, "abcd");
            }
        };
        tokio::time::timeout(Duration::from_secs(5), both).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_origin_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let (origin, endpoint) = origin(&address);
        let Err(error) = send(&origin, &endpoint).await else {
            panic!("nothing listens there")
        };
        assert!(matches!(error, SendError::Connect(_)), "{error}");
    }
}
